"""The intake: ``replay-attach serve``, bug reports arriving over HTTP.

``http_app`` is the Starlette application (the doors and their answers),
``doors`` turns each sender's body into bug-report events, ``signatures``
checks who sent it, ``deliveries`` writes accepted deliveries to the queue
exactly once, and ``server`` runs it all on uvicorn.
"""
