# openYuanrong docs: docs/source_en/multi_language_function_programming_interface/development_guide/data_object/index.md
# ("Passing Data Objects", nested parameters, Python). Only change: the import line.
import yuanrong as yr

yr.init()

@yr.invoke
def get_num(x):
    return x

@yr.invoke
def dis_sum(args): # When dis_sum is called, the passed value is [objref1, objref2, objref3]
    return sum(yr.get(args)) # When calling get, the values of objref1/objref2/objref3 will be transmitted to the current machine.

objref1 = get_num.invoke(1) # Returns object ref here, can return after issuing the call request, no need to wait for get_num to complete execution
objref2 = get_num.invoke(2)
objref3 = get_num.invoke(3)
objref = yr.put([objref1, objref2, objref3]) # Nested passing of object ref
ref = dis_sum.invoke(objref)
num = yr.get(ref, 30)
assert num == 6
