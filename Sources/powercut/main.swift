print("powercut")
