"""Backend clients: one per server and protocol, all with the public shape of ``BackendClient``."""
