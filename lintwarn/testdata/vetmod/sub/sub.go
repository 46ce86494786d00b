package sub

import "fmt"

func Hello() string { return fmt.Sprintf("%s") }
