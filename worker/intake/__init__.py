"""The intake: ``replay-attach serve``, bug reports arriving over HTTP.

``http_app`` is the Starlette application (its routes, each door to its
sender), ``doors`` lists the doors, ``senders`` holds one module per sender (its
authentication, its identity headers, its body), ``sender`` is what a sender
hands on from one delivery, ``bodies`` reads a body within its limit and parses
its JSON, ``tokens`` checks the intake tokens, ``refusals`` are the error
answers, ``enqueue`` turns an accepted delivery into jobs, ``deliveries`` writes
accepted deliveries to the queue exactly once (and sheds them when the queue is
full), ``ticket_states`` applies solved and reopened tickets in the order their
senders signed them, ``rates`` counts each intake token's events per minute,
``protocol`` closes requests that arrive too slowly or with too many header
bytes, and ``server`` runs it all on uvicorn.
"""
