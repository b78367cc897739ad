"""Writes a Qdrant collection snapshot with the real engine, as a Qdrant server would lay it out.

Qdrant Edge (PyPI `qdrant-edge-py`) builds the shard: a RAG system's chunks with two named
vectors (`text`, 64-d cosine; `title`, 16-d dot), payload (document_id, lang, topic, tags), a
keyword index on `lang`, and HNSW indexes built by Edge's own optimizer. The shard folder is then
packed in the server's collection-snapshot layout, mirroring qdrant's
`lib/collection/src/collection/snapshots.rs` (collection level: config.json, version.info,
payload_index.json, shard_key_mapping.json, one folder per shard),
`lib/collection/src/shards/replica_set/snapshots.rs` (replica_state.json beside the local shard)
and `lib/segment/src/segment/snapshot.rs` (each segment as `segments/<uuid>.tar` holding
`snapshot/files/...`). Also writes golden queries (perturbed chunk vectors).
Usage: python make-sample.py SNAPSHOT_OUT QUERIES_OUT [POINTS] [DIM] [DELETE] [QUERIES]
DELETE: delete the first DELETE points after writing them (a backup taken after a bad cleanup);
QUERIES: how many golden queries (default 20).
"""
import io
import json
import os
import random
import shutil
import sys
import tarfile
import tempfile
import uuid

import qdrant_edge as q

snapshot_out, queries_out = sys.argv[1], sys.argv[2]
points = int(sys.argv[3]) if len(sys.argv) > 3 else 600
dim = int(sys.argv[4]) if len(sys.argv) > 4 else 64
delete = int(sys.argv[5]) if len(sys.argv) > 5 else 0
query_count = int(sys.argv[6]) if len(sys.argv) > 6 else 20
rng = random.Random(20261130)
topics = [[rng.gauss(0, 1) for _ in range(dim)] for _ in range(16)]


def near(center, spread):
    return [c + rng.gauss(0, spread) for c in center]


work = tempfile.mkdtemp(prefix="qdrant-sample.")
shard_dir = os.path.join(work, "shard")
hnsw = q.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=10)
config = q.EdgeConfig(
    vectors={
        "text": q.EdgeVectorParams(size=dim, distance=q.Distance.Cosine),
        "title": q.EdgeVectorParams(size=16, distance=q.Distance.Dot),
    },
    on_disk_payload=True,
    hnsw_config=hnsw,
    # A small threshold (KB) so that Edge's optimizer builds real HNSW indexes for the sample.
    optimizers=q.EdgeOptimizersConfig(indexing_threshold=10, default_segment_number=2),
)
shard = q.EdgeShard.create(shard_dir, config)
shard.update(q.UpdateOperation.create_field_index("lang", q.PayloadSchemaType.Keyword))
text_vectors = {}
for start in range(0, points, 500):
    batch = []
    for i in range(start, min(points, start + 500)):
        topic = i % len(topics)
        v = near(topics[topic], 0.6)
        text_vectors[i] = v
        title = [rng.uniform(-1, 1) for _ in range(16)]
        payload = {
            "document_id": f"doc-{i // 6:04d}",
            "lang": "de" if i % 4 == 0 else "en",
            "topic": topic,
            "tags": ["faq"] if i % 10 == 0 else ["wiki", f"t{topic}"],
        }
        batch.append(q.Point(i + 1, {"text": v, "title": title}, payload))
    shard.update(q.UpdateOperation.upsert_points(batch))
if delete:
    shard.update(q.UpdateOperation.delete_points(list(range(1, delete + 1))))
shard.optimize()
shard.flush()
info = shard.info()
shard.close()

# Golden queries: a chunk's vector, slightly moved.
with open(queries_out, "w") as f:
    for n in range(query_count):
        i = rng.randrange(points)
        f.write(json.dumps({"id": f"q{n + 1:02d}", "vector": near(text_vectors[i], 0.05)}) + "\n")


def add_bytes(tar, name, data, mtime):
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.mode = len(data), mtime, 0o644
    tar.addfile(ti, io.BytesIO(data))


def add_tree(tar, root, prefix, mtime):
    for here, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(here, name)
            rel = os.path.relpath(path, root)
            with open(path, "rb") as f:
                add_bytes(tar, f"{prefix}/{rel}", f.read(), mtime)


mtime = 1795921200  # 2026-11-29T03:00:00Z
collection = {
    "params": {
        "vectors": {
            "text": {"size": dim, "distance": "Cosine"},
            "title": {"size": 16, "distance": "Dot"},
        },
        "shard_number": 1,
        "replication_factor": 1,
        "write_consistency_factor": 1,
        "on_disk_payload": True,
    },
    "hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10, "max_indexing_threads": 0, "on_disk": False},
    "optimizer_config": {"deleted_threshold": 0.2, "vacuum_min_vector_number": 1000, "default_segment_number": 2,
                         "indexing_threshold": 10, "flush_interval_sec": 5},
    "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0},
    "quantization_config": None,
}
with tarfile.open(snapshot_out, "w", format=tarfile.GNU_FORMAT) as tar:
    add_bytes(tar, "config.json", json.dumps(collection, indent=2).encode(), mtime)
    add_bytes(tar, "version.info", b"1.16.0", mtime)
    add_bytes(tar, "payload_index.json", json.dumps({"lang": "keyword"}).encode(), mtime)
    add_bytes(tar, "shard_key_mapping.json", b"{}", mtime)
    add_bytes(tar, "0/replica_state.json",
              json.dumps({"is_local": True, "this_peer_id": 1, "peers": {"1": "Active"}}).encode(), mtime)
    add_bytes(tar, "0/shard_config.json", json.dumps({"type": "local"}).encode(), mtime)
    add_tree(tar, os.path.join(shard_dir, "wal"), "0/wal", mtime)
    segments = os.path.join(shard_dir, "segments")
    for seg in sorted(os.listdir(segments)):
        seg_dir = os.path.join(segments, seg)
        if not os.path.isdir(seg_dir) or seg.startswith("."):
            continue
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as seg_tar:
            add_tree(seg_tar, seg_dir, "snapshot/files", mtime)
        add_bytes(tar, f"0/segments/{seg}.tar", buf.getvalue(), mtime)
shutil.rmtree(work)
print(f"{snapshot_out}: {info.points_count} points in {info.segments_count} segments, "
      f"{info.indexed_vectors_count} indexed vectors")
