package opts

func parse(m map[string]any) error {
	for k, v := range m { // want AI-001
		switch k {
		case "cookies":
			if v != nil {
				if c, ok := v.(map[string]any); ok {
					use(c)
				}
			}
		case "headers":
			if v != nil {
				if h, ok := v.(map[string]any); ok {
					use(h)
				} else {
					return errBad
				}
			}
		}
	}
	return nil
}

func route(m string, cached, valid bool) int {
	switch m {
	case "GET":
		if cached {
			return 1
		}
	case "POST":
		if valid {
			return 2
		} else if cached {
			return 3
		}
	}
	return 0
}
