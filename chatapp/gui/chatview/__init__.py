"""The message view: a list model, a painting delegate and the view (see view.py)."""
