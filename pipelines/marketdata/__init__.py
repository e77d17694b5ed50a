"""Market data: recorded-capture parsers (Binance, Upbit) and the local order book."""
