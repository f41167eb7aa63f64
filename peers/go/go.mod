module echobench/peers/go

go 1.19
