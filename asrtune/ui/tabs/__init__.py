"""The page's tabs: one module each, its layout and its wiring together."""
