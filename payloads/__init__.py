"""Payloads at rest: the blob store, the claim-check and AES-GCM codecs, the data converter, the codec server."""
