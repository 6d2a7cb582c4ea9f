"""The intake: ``replay-attach serve``, bug reports arriving over HTTP.

``http_app`` is the Starlette application (the doors and their answers),
``doors`` turns each sender's body into bug-report events, ``signatures``
checks who sent it, ``deliveries`` writes accepted deliveries to the queue
exactly once (and sheds them when the queue is full), ``ticket_states``
applies solved and reopened tickets in the order their senders signed them,
``rates`` counts each intake token's events per minute, ``protocol``
closes requests that arrive too slowly or with too many header bytes, and
``server`` runs it all on uvicorn.
"""
