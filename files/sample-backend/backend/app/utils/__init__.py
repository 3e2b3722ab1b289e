"""Small helpers shared by the services and routes."""
