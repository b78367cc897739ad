"""Writes a Chroma persist folder with the real chromadb: a RAG system's document chunks
(`docs`, cosine, 64-d) and an FAQ (`faq`, l2), with ids, documents, metadata and embeddings
drawn from a fixed seed, so that nearest neighbours are meaningful (clusters per topic).
Also writes golden queries (perturbed chunk vectors) for `drillbook manifest --queries`.
Usage: python make-sample.py PERSIST_DIR QUERIES_OUT [CHUNKS]"""
import random
import sys

import chromadb

persist, queries_out = sys.argv[1], sys.argv[2]
chunks = int(sys.argv[3]) if len(sys.argv) > 3 else 800
dim = 64
rng = random.Random(20261129)
topics = [[rng.gauss(0, 1) for _ in range(dim)] for _ in range(16)]


def near(center, spread):
    return [c + rng.gauss(0, spread) for c in center]


client = chromadb.PersistentClient(path=persist)
# A small sync threshold, so the HNSW index is on disk (a segment folder), not only in SQLite.
docs = client.create_collection(
    "docs",
    metadata={"embedding_model": "all-MiniLM-L6-v2-64", "source": "wiki-export"},
    configuration={"hnsw": {"space": "cosine", "sync_threshold": 100}},
)
vectors = {}
for start in range(0, chunks, 200):
    ids, embs, texts, metas = [], [], [], []
    for i in range(start, min(chunks, start + 200)):
        topic = i % len(topics)
        v = near(topics[topic], 0.6)
        vectors[f"chunk-{i:05d}"] = v
        ids.append(f"chunk-{i:05d}")
        embs.append(v)
        texts.append(f"Chunk {i} of document {i // 8} about topic {topic}.")
        metas.append({"document_id": f"doc-{i // 8:04d}", "lang": "de" if i % 5 == 0 else "en", "topic": topic})
    docs.add(ids=ids, embeddings=embs, documents=texts, metadatas=metas)

faq = client.create_collection("faq", configuration={"hnsw": {"space": "l2"}})
faq.add(
    ids=[f"faq-{i}" for i in range(40)],
    embeddings=[near(topics[i % len(topics)], 0.3) for i in range(40)],
    documents=[f"Question {i}? Answer {i}." for i in range(40)],
    metadatas=[{"section": "billing" if i < 10 else "product"} for i in range(40)],
)

with open(queries_out, "w") as out:
    for q, key in enumerate(rng.sample(sorted(vectors), 20)):
        vec = [x + rng.gauss(0, 0.05) for x in vectors[key]]
        out.write('{"id": "q%02d", "vector": [%s]}\n' % (q, ", ".join("%.6f" % x for x in vec)))
print(f"{docs.count()} chunks, {faq.count()} FAQ entries in {persist}")
