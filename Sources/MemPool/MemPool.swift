// MemPool module
