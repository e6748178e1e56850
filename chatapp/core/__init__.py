"""Pure-Python core: no Qt, no llama.cpp, no Hugging Face (enforced by import-linter)."""
