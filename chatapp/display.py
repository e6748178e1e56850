"""Can a window open here? Answered before Qt is imported, because Qt cannot answer it:
with no display its platform plugin calls qFatal and the process dies of SIGABRT.

Pure Python (environment variables, and a libxcb connection probe through ctypes); no Qt.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from collections.abc import Mapping

log = logging.getLogger(__name__)

# Qt platform plugins that draw without a window system.
HEADLESS_PLATFORMS = frozenset(
    {"offscreen", "minimal", "minimalegl", "vnc", "eglfs", "linuxfb", "vkkhrdisplay"}
)


def display_problem(
    env: Mapping[str, str] | None = None, platform: str | None = None
) -> str | None:
    """Why the window cannot open here, in a few words, or None when it can (or we cannot tell).

    Only Linux and the BSDs have this problem: Windows and macOS always have a window system.
    """
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if platform.startswith(("win", "darwin", "cygwin")):
        return None
    wanted = [p.split(":", 1)[0].strip() for p in env.get("QT_QPA_PLATFORM", "").split(";")]
    wanted = [p for p in wanted if p]
    if any(p in HEADLESS_PLATFORMS for p in wanted):
        return None
    x11, wayland = env.get("DISPLAY", ""), env.get("WAYLAND_DISPLAY", "")
    if wanted and all(p == "xcb" for p in wanted):
        wayland = ""  # Qt was told to use X11 only
    if wanted and all(p.startswith("wayland") for p in wanted):
        x11 = ""
    if not x11 and not wayland:
        return "no display found (DISPLAY and WAYLAND_DISPLAY are not set)"
    if x11 and not wayland and not x_server_answers(x11):
        return f"no X server answers at DISPLAY={x11}"
    return None


def x_server_answers(display: str) -> bool:
    """Connect to the X server the way Qt's xcb plugin does. True if libxcb is missing
    (Qt will say what is wrong with its plugin then) or the connection works."""
    name = ctypes.util.find_library("xcb") or "libxcb.so.1"
    try:
        xcb = ctypes.CDLL(name)
    except OSError:
        return True
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    screen = ctypes.c_int(0)
    conn = xcb.xcb_connect(display.encode(), ctypes.byref(screen))
    try:
        failed = bool(xcb.xcb_connection_has_error(conn))
    finally:
        xcb.xcb_disconnect(conn)  # also frees a connection in the error state
    if failed:
        log.info("xcb_connect(%r) failed", display)
    return not failed
