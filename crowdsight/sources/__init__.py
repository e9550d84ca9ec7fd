"""Frame sources: images, frame folders, video files, streams, webcams."""
