"""The government permit portal's simulator: the pages in PAGES.md, with fault injection."""

from .config import PortalConfig, PortalSettings
from .server import PortalSimulator

__all__ = ["PortalConfig", "PortalSettings", "PortalSimulator"]
