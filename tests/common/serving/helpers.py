"""Stand-in HTTP servers for the serving tests: JSON replies, no logging."""

import http.server
import json


class JsonHandler(http.server.BaseHTTPRequestHandler):
    """A request handler whose `send_json` writes one JSON reply."""

    def log_message(self, *args):
        pass

    def send_json(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
