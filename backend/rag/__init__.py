"""Retrieval: documents → chunks → MiniLM embeddings → faiss, persisted per collection under the data dir."""
