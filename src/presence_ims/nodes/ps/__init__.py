"""The Presence Server (TS 23.141): Peu, Pw, Pen, Pex; XCAP for rules."""
