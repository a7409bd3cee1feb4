"""AR-Seg networks (PSPNet18, BiSeNet18) with CReFF, official checkpoint loading, arseg weights."""
