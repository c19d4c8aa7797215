# openYuanrong docs: docs/source_en/multi_language_function_programming_interface/examples/simple-function-template.md
# ("Stateful Function Example Project", Python), also the getting-started page. Only change: the import line.
# example.py
import yuanrong as yr

# Define stateful function
@yr.instance
class Object:
    def __init__(self):
        self.value = 0

    def save(self, value):
        self.value = value

    def get(self):
        return self.value


# Init only once
yr.init()

# Create three stateful function instances
objs = [Object.invoke() for i in range(3)]

# Asynchronously invoke stateful functions in parallel
[obj.save.invoke(9) for obj in objs]
results_ref = [obj.get.invoke() for obj in objs]
print(yr.get(results_ref))

# Destroy stateful function instance
[obj.terminate() for obj in objs]

# Release environmental resources
yr.finalize()
