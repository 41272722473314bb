"""Running commands safely: a bubblewrap sandbox and the approval policy."""
