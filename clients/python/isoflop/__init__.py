"""isoflop's Python client: `Client` talks to a coordinator over gRPC and answers with pandas DataFrames.

    import isoflop
    c = isoflop.Client()                 # ISOFLOP_ADDRESS, ISOFLOP_TOKEN_FILE as the CLI
    c.sweeps(); c.trials(sweep_id); c.curves(sweep_id); c.fit(sweep_id); c.optimal(1e21, sweep_id)
"""
from isoflop.client import Client, IsoflopError

__all__ = ["Client", "IsoflopError"]
__version__ = "0.1.0"
