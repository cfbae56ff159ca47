"""One package (or module) per node role; each node is started and stopped from asyncio."""
