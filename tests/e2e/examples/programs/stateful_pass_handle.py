# openYuanrong docs: docs/source_en/multi_language_function_programming_interface/development_guide/stateful_function/index.md
# ("Passing Stateful Function Handles", Python). Only change: the import line.
import yuanrong as yr

@yr.invoke
def get(counter):
    return yr.get(counter.get.invoke())

@yr.instance
class Counter:
    def __init__(self):
        self.count = 0

    def add(self, n):
        self.count += n
        return self.count

    def get(self):
        return self.count

if __name__ == "__main__":
    yr.init()

    counter = Counter.invoke()
    result_add = counter.add.invoke(3)
    print(yr.get(result_add))

    result_get = get.invoke(counter)
    # Output 3
    print(yr.get(result_get))

    counter.terminate()
    yr.finalize()
