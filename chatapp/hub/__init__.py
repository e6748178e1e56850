"""Hugging Face hub adapter: search, file lists, resumable verified downloads. No Qt."""
