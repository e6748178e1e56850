"""The PySide6 window. Holds no data of its own: it shows the core's."""
