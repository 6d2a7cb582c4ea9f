"""The attach use case, with no dramatiq in it: events, the step plan, rendering, the ledger.

Importing this package imports nothing else: ``worker.attach.events`` (the event
contract) stays light for producers.
"""
