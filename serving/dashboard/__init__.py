"""The web dashboard's static files (`static/`), served at `/dashboard` by `serving.api.dashboard`."""
