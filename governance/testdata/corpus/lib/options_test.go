package lib

var tlsCases = []struct {
	name, password string
}{
	{name: "encrypted key and wrong password", password: "@@GENERIC3@@"}, // want GOV-001/test
	{name: "no password", password: ""},
}
