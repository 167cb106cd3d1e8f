print("memserve")
