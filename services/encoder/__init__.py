"""The encoder service: H.264 from the capture ring, once per frame however many viewers,
and only while someone watches (``python -m titanium.services.encoder``)."""
