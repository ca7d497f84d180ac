"""LL-HLS for the front door: an fMP4 muxer and a segmenter that keeps a bounded window of
segments and parts and writes the playlists. No HTTP and no bus here: the routes feed it the
encoder's access units and serve what it returns."""
