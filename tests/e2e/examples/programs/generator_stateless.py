# openYuanrong docs: docs/source_en/multi_language_function_programming_interface/advanced_tutorials/generator.md
# ("Stateless Function Generator", Python). Only change: the import line.
import yuanrong as yr

yr.init()

@yr.invoke
def countdown(n):
    while n > 0:
        yield n
        n -= 1

n = 5
# Use next interface
generator = countdown.invoke(n)
print(yr.get(next(generator)))

# Use for loop
for ref in generator:
    print(yr.get(ref))

yr.finalize()
