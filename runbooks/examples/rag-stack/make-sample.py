#!/usr/bin/env python3
"""Builds the rag-stack example's backups (committed; rerun only to change them).

A RAG system as its stores are backed up apart: one archive of the document side (the
documents in SQLite, the same documents as a Markdown corpus, the service's config tree) and
the chunk embeddings in a SQLite file of their own, written by another job. Both are derived
from the quickstart sample, so the stack agrees with itself: every chunk's document exists,
one corpus file per document, the config's embedding dimension is the vectors'.
Deterministic: the same bytes on every run (gzip and tar times fixed).
"""
import gzip, hashlib, io, os, sqlite3, subprocess, tarfile, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
QUICKSTART = os.path.join(HERE, "..", "quickstart", "backups", "rag-2026-11-29.tar.zst")
OUT = os.path.join(HERE, "backups")
STAMP = 1764385200  # fixed member times (the backups are dated by their names)


def sidecar(path):
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    with open(path + ".sha256", "w") as f:
        f.write(f"{digest}  {os.path.basename(path)}\n")


def gz(data):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as g:
        g.write(data)
    return buf.getvalue()


src = tempfile.mkdtemp()
raw = subprocess.run(["zstd", "-dc", QUICKSTART], check=True, capture_output=True).stdout
with tarfile.open(fileobj=io.BytesIO(raw)) as t:
    t.extractall(src, filter="data")
quick = sqlite3.connect(os.path.join(src, "docs.sqlite"))

work = tempfile.mkdtemp()
docs = sqlite3.connect(os.path.join(work, "docs.sqlite"))
docs.executescript("create table documents (id text primary key, title text not null, body text not null, meta text not null);")
docs.executemany("insert into documents values (?, ?, ?, ?)", quick.execute("select id, title, body, meta from documents order by id"))
docs.commit()
docs.execute("vacuum")
docs.close()
vec = sqlite3.connect(os.path.join(work, "vectors.sqlite"))
vec.executescript("""
create table chunks (id text primary key, document_id text not null, ord integer not null, text text not null, embedding blob not null);
create index chunks_by_document on chunks(document_id);
""")
vec.executemany("insert into chunks values (?, ?, ?, ?, ?)", quick.execute("select id, document_id, ord, text, embedding from chunks order by id"))
vec.commit()
vec.execute("vacuum")
vec.close()

members = [("docs.sqlite", open(os.path.join(work, "docs.sqlite"), "rb").read())]
for doc_id, title, body in quick.execute("select id, title, body from documents order by id"):
    members.append((f"corpus/{doc_id}.md", f"# {title}\n\n{body}\n".encode()))
for name in sorted(os.listdir(os.path.join(src, "config"))):
    members.append((f"config/{name}", open(os.path.join(src, "config", name), "rb").read()))

os.makedirs(os.path.join(OUT, "documents"), exist_ok=True)
os.makedirs(os.path.join(OUT, "vectors"), exist_ok=True)
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
    for name, data in members:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), STAMP, 0o644
        t.addfile(info, io.BytesIO(data))
archive = os.path.join(OUT, "documents", "documents-2026-11-29.tar.gz")
open(archive, "wb").write(gz(buf.getvalue()))
sidecar(archive)
vectors = os.path.join(OUT, "vectors", "vectors-2026-11-29.sqlite.gz")
open(vectors, "wb").write(gz(open(os.path.join(work, "vectors.sqlite"), "rb").read()))
sidecar(vectors)
print("wrote", archive, "and", vectors)
