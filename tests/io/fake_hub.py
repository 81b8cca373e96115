"""A local stand-in for the Hugging Face Hub, for export tests.

It implements the HTTP endpoints that ``huggingface_hub``'s ``repo_exists``,
``create_repo`` and ``create_commit`` call on the LFS upload path (the Xet path needs
Hugging Face's storage service and is switched off in the tests):

- ``GET /api/datasets/NS/NAME``: the repo's info, or 404 ``RepoNotFound``;
- ``GET /api/datasets/NS/NAME/tree/REV``: the repo's files (one page);
- ``HEAD`` and ``GET /datasets/NS/NAME/resolve/REV/PATH``: a file's metadata and content
  (what ``hf_hub_download`` asks for);
- ``POST /api/repos/create``: a new repo, 409 when it exists;
- ``POST /api/validate-yaml``: the card's YAML header must parse;
- ``POST /api/datasets/NS/NAME/preupload/REV``: Parquet and PNG files go to LFS; the
  ``oid`` of the file the repo holds at each path (the client leaves a file the repo
  holds unchanged out of the commit);
- ``POST /datasets/NS/NAME.git/info/lfs/objects/batch``: upload actions, none for an object
  the server already holds (this is what lets an upload resume);
- ``PUT /lfs/OID``: the object, checked against its sha256;
- ``POST /api/datasets/NS/NAME/commit/REV``: the NDJSON commit (files added, LFS files
  added, files deleted), to ``main`` or to a pull request (``refs/pr/N``); with
  ``create_pr=1`` it opens a pull request from ``main`` that holds the commit;
- ``POST /api/datasets/NS/NAME/discussions/N/merge``: the pull request's files become
  ``main``'s in one step;
- ``GET /api/datasets/NS/NAME/discussions``: the repo's pull requests (one page), titled
  with their first commit's summary, open until merged (``status=open`` filters).

Every request but the object PUTs (presigned URLs on the real Hub) must carry
``Authorization: Bearer <token>``. ``put_failures`` scripts the
next PUTs to fail: ``"drop"`` cuts the connection without an answer, a number answers
with that HTTP status; the objects in ``refused`` are answered 400 at every PUT.
``on_put(oid)``, when set, is called at each PUT before it is answered (to look at the
client's disk while it uploads).
``commit_failures`` scripts the next commits (to any revision): a status answers the
commit with it, 0 lets it through, ``"lost"`` makes the commit and then cuts the
connection without an answer (as when the answer is lost on its way). ``pulls`` holds
each pull request's files by ``(repo, number)``, ``titles`` their titles, ``merges`` the
pull requests merged (``merged``: their numbers); each commit's entry in ``commits``
names its ``revision``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import yaml


class FakeHub:
    """Start with ``with FakeHub(token) as hub:``; ``hub.url`` is its endpoint."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.repos: dict[str, dict[str, bytes]] = {}
        self.private: dict[str, bool] = {}
        self.objects: dict[str, bytes] = {}
        self.puts: Counter[str] = Counter()  # every PUT, failed or not
        self.stored: Counter[str] = Counter()  # PUTs that stored their object
        self.put_failures: list[str | int] = []
        self.on_put: Any = None
        self.refused: set[str] = set()  # objects whose every PUT is answered 400
        self.commits: list[dict[str, Any]] = []
        self.commit_failures: list[int | str] = []  # 0: answered as usual
        self.pulls: dict[tuple[str, int], dict[str, bytes]] = {}
        self.titles: dict[tuple[str, int], str] = {}
        self.merges: list[tuple[str, int]] = []  # (repo, number) of each merge, in order
        self.requests: list[str] = []
        self.seen_tokens: set[str] = set()
        self.unknown: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                hub.handle(self, "GET")

            def do_HEAD(self) -> None:
                hub.handle(self, "HEAD")

            def do_POST(self) -> None:
                hub.handle(self, "POST")

            def do_PUT(self) -> None:
                hub.handle(self, "PUT")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def merged(self) -> list[int]:
        """The numbers of the pull requests merged, in order (of any repo)."""
        return [number for _, number in self.merges]

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def tree(self, request: BaseHTTPRequestHandler, repo: str, folder: str) -> None:
        """The files and folders under ``folder`` (all of them with ``recursive``), or
        404 ``EntryNotFound`` when there is no such folder."""
        files = self.repos.get(repo, {})
        recursive = "recursive=true" in request.path.lower()
        prefix = f"{folder}/" if folder else ""
        listing: dict[str, dict[str, Any]] = {}
        for path, content in sorted(files.items()):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :].split("/")
            for depth in range(1, len(rest)):  # the folders on the way
                if depth > 1 and not recursive:
                    break
                name = prefix + "/".join(rest[:depth])
                listing[name] = {"type": "directory", "path": name, "oid": "0" * 40, "size": 0}
            if recursive or len(rest) == 1:
                listing[path] = {
                    "type": "file",
                    "path": path,
                    "size": len(content),
                    "oid": hashlib.sha1(content).hexdigest(),
                }
        if folder and not listing:
            self.reply(
                request, 404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"}
            )
        else:
            self.reply(request, 200, list(listing.values()))

    def files_at(self, repo: str, revision: str) -> dict[str, bytes]:
        """The files of ``repo`` at ``revision``: ``main`` or a pull request's ``refs/pr/N``."""
        revision = unquote(revision)
        if revision.startswith("refs/pr/"):
            return self.pulls[repo, int(revision.rsplit("/", 1)[1])]
        return self.repos.get(repo, {})

    def resolve(self, request: BaseHTTPRequestHandler, method: str, repo: str, path: str) -> None:
        """A file's content (``GET``) or its headers alone (``HEAD``): the commit, the
        ETag and the size; 404 ``EntryNotFound`` when the repo has no such file."""
        content = self.repos.get(repo, {}).get(path)
        if content is None:
            self.reply(
                request, 404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"}
            )
            return
        request.send_response(200)
        request.send_header("Content-Type", "application/octet-stream")
        request.send_header("Content-Length", str(len(content)))
        request.send_header("ETag", f'"{hashlib.sha1(content).hexdigest()}"')
        state = json.dumps(sorted(self.repos[repo])).encode()
        request.send_header("X-Repo-Commit", hashlib.sha1(state).hexdigest())
        request.end_headers()
        if method == "GET":
            request.wfile.write(content)

    # -- plumbing ---------------------------------------------------------------------

    @staticmethod
    def body(request: BaseHTTPRequestHandler) -> bytes:
        if request.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(request.rfile.readline().strip(), 16)
                if size == 0:
                    request.rfile.readline()
                    return b"".join(chunks)
                chunks.append(request.rfile.read(size))
                request.rfile.readline()
        return request.rfile.read(int(request.headers.get("Content-Length") or 0))

    @staticmethod
    def reply(
        request: BaseHTTPRequestHandler,
        status: int,
        payload: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(payload if payload is not None else {}).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            request.send_header(key, value)
        request.end_headers()
        if request.command != "HEAD":  # a HEAD answer has no body
            request.wfile.write(data)

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        path = request.path.split("?", 1)[0]
        self.requests.append(f"{method} {path}")
        auth = request.headers.get("Authorization", "")
        presigned = method == "PUT" and path.startswith("/lfs/")  # as an S3 URL: no token
        if not presigned:
            self.seen_tokens.add(auth.removeprefix("Bearer "))
        if auth != f"Bearer {self.token}" and not presigned:
            self.body(request)
            self.reply(request, 401, {"error": "Invalid credentials in Authorization header"})
            return
        parts = path.strip("/").split("/")
        payload = self.body(request)
        if method in ("GET", "HEAD") and parts[0] == "datasets" and parts[3:4] == ["resolve"]:
            self.resolve(request, method, "/".join(parts[1:3]), "/".join(parts[5:]))
        elif method == "GET" and parts[:2] == ["api", "datasets"] and parts[4:5] == ["tree"]:
            self.tree(request, "/".join(parts[2:4]), "/".join(parts[6:]))
        elif method == "GET" and parts[:2] == ["api", "datasets"] and len(parts) in (4, 6):
            repo = "/".join(parts[2:4])
            if repo not in self.repos:
                self.reply(
                    request,
                    404,
                    {"error": "Repository not found"},
                    {"X-Error-Code": "RepoNotFound"},
                )
            else:
                self.reply(request, 200, {"id": repo, "sha": "0" * 40, "private": False})
        elif method == "POST" and parts == ["api", "repos", "create"]:
            body = json.loads(payload)
            repo = f"{body['organization']}/{body['name']}"
            if repo in self.repos:
                self.reply(
                    request,
                    409,
                    {
                        "error": "You already created this dataset repo",
                        "url": f"{self.url}/datasets/{repo}",
                    },
                )
            else:
                self.repos[repo] = {
                    ".gitattributes": b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"
                }
                self.private[repo] = body.get("visibility") == "private" or bool(
                    body.get("private")
                )
                self.reply(request, 200, {"url": f"{self.url}/datasets/{repo}", "name": repo})
        elif method == "POST" and parts == ["api", "validate-yaml"]:
            content = json.loads(payload)["content"]
            try:
                yaml.safe_load(content.split("---")[1])
                self.reply(request, 200, {"errors": [], "warnings": []})
            except (yaml.YAMLError, IndexError) as err:
                self.reply(request, 400, {"errors": [{"message": str(err)}], "warnings": []})
        elif method == "POST" and parts[:2] == ["api", "datasets"] and parts[4:5] == ["preupload"]:
            files = json.loads(payload)["files"]
            held = self.files_at("/".join(parts[2:4]), "/".join(parts[5:]))
            modes = []
            for f in files:
                lfs = f["path"].endswith((".parquet", ".png"))
                content = held.get(f["path"])
                oid = None  # the file the repo holds at that path, as the Hub names it
                if content is not None and lfs:
                    oid = hashlib.sha256(content).hexdigest()
                elif content is not None:
                    oid = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
                modes.append(
                    {
                        "path": f["path"],
                        "shouldIgnore": False,
                        "oid": oid,
                        "uploadMode": "lfs" if lfs else "regular",
                    }
                )
            self.reply(request, 200, {"files": modes})
        elif (
            method == "POST" and parts[0] == "datasets" and path.endswith("/info/lfs/objects/batch")
        ):
            objects = []
            for item in json.loads(payload)["objects"]:
                entry = {"oid": item["oid"], "size": item["size"]}
                if item["oid"] not in self.objects:
                    entry["actions"] = {"upload": {"href": f"{self.url}/lfs/{item['oid']}"}}
                objects.append(entry)
            self.reply(request, 200, {"transfer": "basic", "objects": objects})
        elif method == "PUT" and parts[0] == "lfs":
            oid = parts[1]
            self.puts[oid] += 1
            if self.on_put is not None:
                self.on_put(oid)
            if oid in self.refused:
                self.reply(request, 400, {"error": "scripted refusal"})
                return
            if self.put_failures:
                failure = self.put_failures.pop(0)
                if failure == "drop":  # a broken upload: no answer at all
                    request.close_connection = True
                    request.connection.close()
                else:
                    self.reply(request, int(failure), {"error": "scripted failure"})
                return
            if hashlib.sha256(payload).hexdigest() != oid:
                self.reply(request, 400, {"error": "sha256 mismatch"})
                return
            self.objects[oid] = payload
            self.stored[oid] += 1
            self.reply(request, 200, {})
        elif method == "POST" and parts[:2] == ["api", "datasets"] and parts[4:5] == ["commit"]:
            repo = "/".join(parts[2:4])
            revision = unquote("/".join(parts[5:]))
            failure = self.commit_failures.pop(0) if self.commit_failures else 0
            if failure and failure != "lost":
                self.reply(request, int(failure), {"error": "scripted failure"})
                return
            lines = [json.loads(line) for line in payload.splitlines() if line.strip()]
            files = dict(self.files_at(repo, revision))
            for line in lines:
                value = line["value"]
                if line["key"] == "file":
                    files[value["path"]] = base64.b64decode(value["content"])
                elif line["key"] == "lfsFile":
                    if value["oid"] not in self.objects:
                        self.reply(request, 422, {"error": f"LFS object {value['oid']} missing"})
                        return
                    files[value["path"]] = self.objects[value["oid"]]
                elif line["key"] == "deletedFile":
                    if value["path"] not in files:
                        self.reply(request, 404, {"error": f"no file {value['path']}"})
                        return
                    del files[value["path"]]
            answer: dict[str, Any] = {"success": True}
            if "create_pr=1" in request.path:
                number = 1 + sum(1 for r, _ in self.pulls if r == repo)
                revision = f"refs/pr/{number}"
                answer["pullRequestUrl"] = f"{self.url}/datasets/{repo}/discussions/{number}"
                self.titles[repo, number] = lines[0]["value"]["summary"]
            if revision.startswith("refs/pr/"):
                self.pulls[repo, int(revision.rsplit("/", 1)[1])] = files
            else:
                self.repos[repo] = files
            oid = hashlib.sha1(json.dumps(sorted(files)).encode()).hexdigest()
            self.commits.append(
                {"repo": repo, "header": lines[0]["value"], "oid": oid, "revision": revision}
            )
            answer.update(commitUrl=f"{self.url}/datasets/{repo}/commit/{oid}", commitOid=oid)
            if failure == "lost":
                request.close_connection = True
                request.connection.close()
                return
            self.reply(request, 200, answer)
        elif method == "GET" and parts[:2] == ["api", "datasets"] and parts[4:] == ["discussions"]:
            repo = "/".join(parts[2:4])
            query = request.path.partition("?")[2]
            pulls = [
                {
                    "num": number,
                    "title": title,
                    "status": "merged" if (repo, number) in self.merges else "open",
                    "isPullRequest": True,
                    "createdAt": "2026-12-06T00:00:00.000Z",
                    "author": {"name": "curation-tests"},
                    "repo": {"name": repo, "type": "dataset"},
                }
                for (r, number), title in sorted(self.titles.items())
                if r == repo
            ]
            if "status=open" in query:
                pulls = [p for p in pulls if p["status"] == "open"]
            self.reply(request, 200, {"discussions": pulls, "count": len(pulls), "start": 0})
        elif (
            method == "POST"
            and parts[:2] == ["api", "datasets"]
            and parts[4:5] == ["discussions"]
            and parts[6:] == ["merge"]
        ):
            repo, number = "/".join(parts[2:4]), int(parts[5])
            if (repo, number) not in self.pulls or (repo, number) in self.merges:
                self.reply(request, 404, {"error": f"no open pull request {number}"})
                return
            self.repos[repo] = self.pulls[repo, number]
            self.merges.append((repo, number))
            self.reply(request, 200, {})
        else:
            self.unknown.append(f"{method} {path}")
            self.reply(request, 404, {"error": f"fake hub: no route {method} {path}"})
