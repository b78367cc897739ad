#!/usr/bin/env python3
"""Builds the quickstart's sample backup (committed; rerun only to change it).

A small RAG store: documents with chunk embeddings (16-d, f32le BLOBs) in SQLite, the
golden queries answered by an exact search at "backup time", a config tree, and the
manifest of every file. Deterministic: the same bytes on every run.
"""
import hashlib, io, json, math, os, random, sqlite3, struct, subprocess, tarfile, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DIM, DOCS, CHUNKS_PER_DOC = 16, 200, 5
rng = random.Random(20261129)

def unit(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]

def cosine(a, b):
    return sum(x * y for x, y in zip(a, b))

tree = tempfile.mkdtemp()
db = sqlite3.connect(os.path.join(tree, "docs.sqlite"))
db.executescript("""
create table documents (id text primary key, title text not null, body text not null, meta text not null);
create table chunks (id text primary key, document_id text not null references documents(id), ord integer not null,
                     text text not null, embedding blob not null);
create index chunks_by_document on chunks(document_id);
""")
vectors = {}
for d in range(DOCS):
    doc = f"doc-{d:04d}"
    topic = unit([rng.gauss(0, 1) for _ in range(DIM)])
    db.execute("insert into documents values (?,?,?,?)",
               (doc, f"Runbook note {d}", f"Body of document {d}. " * 5, json.dumps({"lang": "en", "source": "wiki", "rev": d % 7})))
    for c in range(CHUNKS_PER_DOC):
        cid = f"{doc}-c{c}"
        v = unit([t + rng.gauss(0, 0.35) for t in topic])
        vectors[cid] = v
        db.execute("insert into chunks values (?,?,?,?,?)", (cid, doc, c, f"chunk {c} of {doc}", struct.pack(f"<{DIM}f", *v)))
db.commit()
db.close()

# Golden queries: a perturbed chunk vector, answered by an exact cosine top-5.
golden = []
ids = sorted(vectors)
stored = {k: struct.unpack(f"<{DIM}f", struct.pack(f"<{DIM}f", *v)) for k, v in vectors.items()}
for q in range(8):
    base = stored[ids[rng.randrange(len(ids))]]
    qv = unit([x + rng.gauss(0, 0.05) for x in base])
    top = sorted(ids, key=lambda i: (-cosine(qv, stored[i]), i))[:5]
    golden.append({"id": f"q{q}", "vector": [round(x, 6) for x in qv], "expected": top})
os.makedirs(os.path.join(HERE, "golden"), exist_ok=True)
with open(os.path.join(HERE, "golden", "queries.jsonl"), "w") as f:
    for g in golden:
        f.write(json.dumps(g) + "\n")

os.makedirs(os.path.join(tree, "config"))
with open(os.path.join(tree, "config", "app.yaml"), "w") as f:
    f.write("service: rag-api\nembedding:\n  model: all-MiniLM-L6-v2\n  dim: 16\nretrieval:\n  k: 5\n")
with open(os.path.join(tree, "config", "index.json"), "w") as f:
    json.dump({"embedding": {"model": "all-MiniLM-L6-v2", "dim": 16}, "table": "chunks"}, f, indent=2)
with open(os.path.join(tree, "config", "limits.toml"), "w") as f:
    f.write("[embedding]\nmodel = \"all-MiniLM-L6-v2\"\ndim = 16\n\n[rate]\nper_minute = 600\n")

# Manifest of the tree, in sha256sum format, kept beside the runbook (not in the backup).
lines = []
for root, _, files in os.walk(tree):
    for name in files:
        p = os.path.join(root, name)
        rel = os.path.relpath(p, tree)
        lines.append(f"{hashlib.sha256(open(p, 'rb').read()).hexdigest()}  {rel}\n")
with open(os.path.join(HERE, "files.sha256"), "w") as f:
    f.writelines(sorted(lines, key=lambda l: l.split("  ", 1)[1]))

# The backup: a deterministic tar, compressed with zstd, and its sidecar.
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
    for rel in sorted(l.split("  ", 1)[1].strip() for l in lines):
        info = tar.gettarinfo(os.path.join(tree, rel), arcname=rel)
        info.mtime, info.uid, info.gid, info.uname, info.gname = 1764374400, 0, 0, "", ""
        with open(os.path.join(tree, rel), "rb") as f:
            tar.addfile(info, f)
os.makedirs(os.path.join(HERE, "backups"), exist_ok=True)
out = os.path.join(HERE, "backups", "rag-2026-11-29.tar.zst")
zst = subprocess.run(["zstd", "-q", "-19", "-c"], input=buf.getvalue(), stdout=subprocess.PIPE, check=True).stdout
open(out, "wb").write(zst)
with open(out + ".sha256", "w") as f:
    f.write(f"{hashlib.sha256(zst).hexdigest()}  rag-2026-11-29.tar.zst\n")
print("db at", os.path.join(tree, "docs.sqlite"))
