"""Making transfer sets through a box: the Synthesizer base and every method's synthesis machinery."""
