"""HTTP service: FastAPI app, auth, API routers, live view and dashboard."""
