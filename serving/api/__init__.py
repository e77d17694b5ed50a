"""The HTTP/WebSocket routers of the serving tier, one per concern (see `serving.app.create_app`).

- `signal`: GET /signal, GET /hot
- `health`: GET /health
- `metrics`: GET /metrics
- `ws`: GET /ws/signals/schema, WS /ws/signals
- `trading`: GET /positions, /orders, /trading/status; POST /kill, /resume
"""
