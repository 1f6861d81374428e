module exfilguard

go 1.26
