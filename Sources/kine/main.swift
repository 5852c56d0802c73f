print("kine")
