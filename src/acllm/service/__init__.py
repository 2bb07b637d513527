"""The HTTP service: ``acllm serve`` (FastAPI on uvicorn workers, one shared model process).

Nothing here is imported by ``import acllm``: the service's dependencies are the ``serve`` extra.
"""
