"""Ship a new model version to both servers without dropping a request: ``python -m serving.rollout``
(``make rollout VERSION=N``). docs/rollout.md is the user's page.

- ``settings``: the typed settings (what, where, how long each wait is and why);
- ``servers``: TF Serving (its model config, reloaded over gRPC) and TorchServe (its management
  API) as the rollout drives them;
- ``core``: the decisions (load beside, wait ready, verify, switch, drain, unload; refuse a bad
  version), on any servers, with an injected clock;
- ``gateway``: the gateway's canary split;
- ``log``: the typed log of every step, handed back and written as JSON.
"""
