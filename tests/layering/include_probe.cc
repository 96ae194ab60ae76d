// Empty on purpose: the layering tests (tests/CMakeLists.txt) compile it with `-include HEADER` and
// exactly the include roots one layer's library gets, to prove which headers that layer can reach.
