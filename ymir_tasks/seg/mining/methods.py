"""The names of the superpixel methods (no imports: the hyper-parameter schema reads them where
only the standard library is installed, e.g. at registration)."""

SUPERPIXEL_METHODS = ("slico", "slic", "mslic", "seeds", "fast_slic")
