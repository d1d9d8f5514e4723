"""Integrations of dbwire with frameworks: FastAPI dependencies."""
