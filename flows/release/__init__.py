"""The release flow: the flow itself, its executor, and the background analyses it watches."""
