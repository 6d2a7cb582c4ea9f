"""The queue side (dramatiq on Redis): broker, producer, job outcomes, retries, failed jobs.

Importing this package imports nothing else: ``worker.jobs.producer`` stays
light for producers.
"""
