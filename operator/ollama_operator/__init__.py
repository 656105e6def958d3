"""ollama-operator: run fleets of Ollama servers on Kubernetes from one YAML object.

The package is layered the way the controller and the sidecar talk to each
other: :mod:`ollama_operator.api` is the shared vocabulary (the OllamaServer
resource and the sidecar's configuration file); :mod:`ollama_operator.controller`
and :mod:`ollama_operator.sidecar` both import it and never import each other,
because they run in different processes on different machines.
"""

__version__ = "0.1.0"
