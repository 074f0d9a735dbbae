"""A tiny in-memory stand-in for the part of the Hugging Face Hub API that pushing and downloading a model
use, served on 127.0.0.1 so the real ``huggingface_hub`` client can be tested offline.

Endpoints: POST /api/repos/create, POST /api/validate-yaml, POST /api/models/{repo}/branch/{branch},
POST /api/models/{repo}/preupload/{rev} (every file "regular", i.e. inline in the commit),
POST /api/models/{repo}/commit/{rev} (NDJSON, base64 file contents), HEAD and GET /{repo}/resolve/{rev}/{path}.
Tokens: ``hf_write`` may write, ``hf_read`` gets 403 on writes, anything else 401.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote


class FakeHub:
    def __init__(self):
        self.repos: dict[str, dict[str, dict[str, bytes]]] = {}  # repo -> branch -> path -> content
        self.requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _send(self, status: int, body: dict | bytes = b"", headers: dict | None = None, head: bool = False):
                data = json.dumps(body).encode() if isinstance(body, dict) else body
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                if isinstance(body, dict):
                    self.send_header("Content-Type", "application/json")
                if status >= 400:
                    self.send_header("X-Error-Message", body.get("error", "") if isinstance(body, dict) else "")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not head:
                    self.wfile.write(data)

            def _write_allowed(self) -> bool:
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                if token == "hf_write":
                    return True
                read_only = token == "hf_read"
                self._send(403 if read_only else 401, {"error": "Forbidden" if read_only else "Unauthorized"})
                return False

            def do_POST(self):
                hub.requests.append(f"POST {self.path}")
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                path = unquote(self.path.split("?")[0])
                if not self._write_allowed():
                    return
                if path == "/api/repos/create":
                    spec = json.loads(body)
                    repo = f"{spec['organization']}/{spec['name']}" if spec.get("organization") else spec["name"]
                    hub.repos.setdefault(repo, {"main": {}})
                    return self._send(200, {"url": f"{hub.url}/{repo}", "name": repo, "id": repo})
                if path == "/api/validate-yaml":  # the client checks the card's metadata before committing
                    return self._send(200, {"errors": [], "warnings": []})
                m = re.fullmatch(r"/api/models/(.+?/.+?)/(branch|preupload|commit)/(.+)", path)
                if not m:
                    return self._send(404, {"error": "Not found"})
                repo, action, rev = m.groups()
                if repo not in hub.repos:
                    return self._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                if action == "branch":
                    hub.repos[repo].setdefault(rev, dict(hub.repos[repo]["main"]))
                    return self._send(200, {})
                if action == "preupload":
                    files = [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                        for f in json.loads(body)["files"]
                    ]
                    return self._send(200, {"files": files})
                tree = hub.repos[repo].setdefault(rev, {})
                for line in body.decode().splitlines():
                    item = json.loads(line)
                    if item["key"] == "file":
                        tree[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                oid = hashlib.sha1(
                    json.dumps(sorted((p, hashlib.sha1(c).hexdigest()) for p, c in tree.items())).encode()
                ).hexdigest()
                return self._send(200, {"commitUrl": f"{hub.url}/{repo}/commit/{oid}", "commitOid": oid})

            def _resolve(self, head: bool):
                hub.requests.append(f"{self.command} {self.path}")
                m = re.fullmatch(r"/(.+?/.+?)/resolve/([^/]+)/(.+)", unquote(self.path.split("?")[0]))
                if not m:
                    return self._send(404, {"error": "Not found"}, head=head)
                repo, rev, file = m.groups()
                if repo not in hub.repos:
                    return self._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"}, head)
                tree = hub.repos[repo].get(rev)
                if tree is None or file not in tree:
                    return self._send(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"}, head)
                content = tree[file]
                commit = hashlib.sha1(repr(sorted(tree)).encode() + rev.encode()).hexdigest()
                etag = f'"{hashlib.sha256(content).hexdigest()}"'
                self._send(200, content, {"ETag": etag, "X-Repo-Commit": commit}, head)

            def do_HEAD(self):
                self._resolve(head=True)

            def do_GET(self):
                self._resolve(head=False)

        return Handler
