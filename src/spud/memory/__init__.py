"""Memory: facts, episodes, skills and learned documents, hybrid recall, and the nightly sleep."""
