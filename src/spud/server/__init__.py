"""The server: FastAPI app with the OpenAI-compatible API, the task API and sign-in."""
